"""How the documents write a sum of money without naming its currency.

「預算 3 億」 and 「投入 1,000 萬以上」 are sums, but 萬 and 億 are magnitudes, not currencies:
「吸引了 120 萬遊客」 counts visitors. Taken for a sum, it answered 「它的門票多少錢？」 (a ticket
price the documents never give) with the visitor count. So a bare magnitude stands for a sum only
where no counted noun follows it: at a mark or the end of the text, or before words that bound
an amount (以上, 左右, 至 …). In the bundled corpus, 168 of 234 bare 萬 / 億 figures are followed
by a currency anyway (美元, 元, 韓元); most of the rest count people, units or tonnes.
"""

from __future__ import annotations

#: 萬 / 億 (either script) as the unit of a sum: not followed by a Han character that could be
#: the noun it counts.
BARE_MAGNITUDE = r"(?:万|萬|亿|億)(?:(?=[^\u3400-\u9fff])|$|(?=以上|以下|左右|多|余|餘|至|到))"
