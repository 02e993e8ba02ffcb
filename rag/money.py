"""How the documents write a sum of money without naming its currency.

「預算 3 億」 and 「投入 1,000 萬以上」 are sums, but 萬 and 億 are magnitudes, not currencies:
「吸引了 120 萬遊客」 counts visitors. Taken for a sum, it answered 「它的門票多少錢？」 (a ticket
price the documents never give) with the visitor count. So a bare magnitude stands for a sum only
where no counted noun follows it: at a mark or the end of the text, or before words that bound
an amount (以上, 左右, 至 …). In the bundled corpus, 168 of 234 bare 萬 / 億 figures are followed
by a currency anyway (美元, 元, 韓元); most of the rest count people, units or tonnes.
"""

from __future__ import annotations

#: Currencies as documents and questions write them, in either script (日幣 is Taiwan's 日元). A
#: bare magnitude no longer counts before them (「5億日幣」), so each must be named here.
CURRENCIES = (
    "美元", "美金", "欧元", "歐元", "日元", "日圆", "日圓", "日币", "日幣", "韩元", "韓元", "英镑", "英鎊",
    "人民币", "人民幣", "新台币", "新台幣", "台币", "台幣", "港币", "港幣", "元",
)  # fmt: skip
#: 萬 / 億 (either script) as the unit of a sum: not followed by a Han character that could be
#: the noun it counts.
BARE_MAGNITUDE = r"(?:万|萬|亿|億)(?:(?=[^\u3400-\u9fff])|$|(?=以上|以下|左右|多|余|餘|至|到))"
#: What makes a figure a sum: a currency, or a bare magnitude where no counted noun follows.
SUM_UNIT = "|".join(CURRENCIES) + "|" + BARE_MAGNITUDE
