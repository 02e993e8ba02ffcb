"""Hand-computed checks for eval.metrics.

Expected values are derived by hand in comments so a regression in the metric
(not just in the test) makes these fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.metrics import (
    PUNCTUATION,
    answer_in_script,
    char_f1,
    contains_evidence,
    detect_script,
    hit_at_k,
    mean_or_none,
    ndcg_at_k,
    normalise_for_match,
    number_recall,
    percentile,
    ratio,
    reciprocal_rank,
    refusal_metrics,
    rouge_l_chars,
    script_match,
)

# ---------------------------------------------------------------------------
# normalise_for_match / contains_evidence
# ---------------------------------------------------------------------------


def test_normalise_folds_script_width_space_and_case() -> None:
    # NFKC: full-width Ｇ Ｄ Ｐ ５ ０ -> ASCII; t2s: 國內生產總值 -> 国内生产总值;
    # whitespace incl. ideographic space U+3000 and newline removed; lower-cased.
    assert normalise_for_match("ＧＤＰ 國內\n生產　總值 ５０") == "gdp国内生产总值50"


def test_normalise_removes_zero_width_characters() -> None:
    assert normalise_for_match("盧\u200b森堡") == "卢森堡"


def test_contains_evidence_across_scripts_and_whitespace() -> None:
    chunk = "盧森堡是一個內陸國家，\n總人口 50餘萬人。"
    assert contains_evidence(chunk, "总人口50余万人")  # Simplified evidence, Traditional chunk
    assert contains_evidence("卢森堡总人口50余万人", "總人口 50 餘萬人")  # the other way round
    assert contains_evidence(chunk, "ＬＵＸ") is False
    assert contains_evidence("Capital: LUXEMBOURG", "capital:luxembourg")


def test_contains_evidence_empty_evidence_is_false() -> None:
    assert contains_evidence("任何文本", "") is False
    assert contains_evidence("任何文本", " \n\u3000") is False  # whitespace-only normalises to ""


def test_contains_evidence_absent() -> None:
    assert contains_evidence("盧森堡總人口50餘萬人", "總人口60餘萬人") is False


# ---------------------------------------------------------------------------
# Retrieval metrics
# ---------------------------------------------------------------------------


def test_hit_at_k_basic_and_edges() -> None:
    ranked = [False, False, True]
    assert hit_at_k(ranked, 2) == 0.0
    assert hit_at_k(ranked, 3) == 1.0
    assert hit_at_k(ranked, 100) == 1.0  # k larger than the list looks at the whole list
    assert hit_at_k([], 5) == 0.0
    assert hit_at_k([False] * 4, 10) == 0.0
    with pytest.raises(ValueError):
        hit_at_k(ranked, 0)


def test_reciprocal_rank() -> None:
    assert reciprocal_rank([True, True]) == 1.0
    assert reciprocal_rank([False, False, True, True]) == pytest.approx(1 / 3)
    assert reciprocal_rank([False, False, True], k=2) == 0.0  # first hit beyond cut-off
    assert reciprocal_rank([]) == 0.0
    # MRR over three queries: (1/2 + 0 + 1) / 3 = 0.5
    rrs = [reciprocal_rank(r) for r in ([False, True], [False], [True])]
    assert mean_or_none(rrs) == pytest.approx(0.5)


def test_ndcg_known_ranking() -> None:
    # [F, T, F, T]: DCG  = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061606
    # ideal [T, T, F, F]: iDCG = 1/log2(2) + 1/log2(3) = 1 + 0.630930 = 1.630930
    # nDCG = 1.061606 / 1.630930 = 0.650921
    assert ndcg_at_k([False, True, False, True]) == pytest.approx(0.650921, abs=1e-6)


def test_ndcg_edges() -> None:
    assert ndcg_at_k([True, False, False]) == 1.0  # ideal w.r.t. the retrieved list
    assert ndcg_at_k([True, True]) == 1.0
    assert ndcg_at_k([False, False]) == 0.0
    assert ndcg_at_k([]) == 0.0
    # Relevant item below the cut-off still counts in the ideal:
    # [F, T, T] @2: DCG = 1/log2(3) = 0.630930; iDCG from [T, T, F][:2] = 1.630930 -> 0.386853
    assert ndcg_at_k([False, True, True], k=2) == pytest.approx(0.386853, abs=1e-6)
    # Only relevant item beyond k -> DCG 0, iDCG 1 -> 0.
    assert ndcg_at_k([False, False, True], k=2) == 0.0


# ---------------------------------------------------------------------------
# Answer metrics
# ---------------------------------------------------------------------------


def test_char_f1_known_cjk_strings() -> None:
    # After t2s: pred 卢森堡人口约50万     -> 9 chars: 卢 森 堡 人 口 约 5 0 万
    #            ref  卢森堡总人口50余万人 -> 11 chars: 卢 森 堡 总 人 口 5 0 余 万 人
    # Multiset overlap: 卢 森 堡 人(min(1,2)=1) 口 5 0 万 = 8
    # P = 8/9, R = 8/11, F1 = 2*8 / (9 + 11) = 16/20 = 0.8
    assert char_f1("盧森堡人口約50萬", "盧森堡總人口50餘萬人") == pytest.approx(0.8)


def test_char_f1_ignores_punctuation_and_counts_multiset() -> None:
    # Punctuation (full-width and ASCII) is dropped: 「是的。」 == 是的
    assert char_f1("「是的。」", "是的!") == 1.0
    # pred 哈哈哈 (3), ref 哈 (1): overlap min(3,1)=1, F1 = 2*1/(3+1) = 0.5
    assert char_f1("哈哈哈", "哈") == pytest.approx(0.5)
    assert char_f1("完全不同", "毫无关系") == 0.0


def test_char_f1_empty_cases() -> None:
    assert char_f1("", "") == 1.0
    assert char_f1("。。", "") == 1.0  # punctuation only == empty
    assert char_f1("有答案", "") == 0.0
    assert char_f1("", "有答案") == 0.0


def test_traditional_prediction_equals_simplified_reference() -> None:
    pred = "臺灣的軟體產業，產值約 ３５００ 億元。"
    ref = "台湾的软体产业,产值约3500亿元"
    assert char_f1(pred, ref) == 1.0
    assert rouge_l_chars(pred, ref) == 1.0


def test_rouge_l_known_lcs() -> None:
    # Same characters, different order: char-F1 1.0, but LCS(北京上海, 上海北京) = 2 (上海 or 北京)
    # P = R = 2/4 -> F = 0.5
    assert char_f1("北京上海", "上海北京") == 1.0
    assert rouge_l_chars("北京上海", "上海北京") == pytest.approx(0.5)
    # pred 卢森堡人口约50万 (9), ref 卢森堡总人口50余万人 (11);
    # LCS = 卢森堡人口50万 = 8 -> F = 2*8/(9+11) = 0.8
    assert rouge_l_chars("盧森堡人口約50萬", "盧森堡總人口50餘萬人") == pytest.approx(0.8)
    # pred ABCBDAB (7), ref BDCABA (6): classic LCS = 4 (BCBA) -> F = 8/13
    assert rouge_l_chars("ABCBDAB", "BDCABA") == pytest.approx(8 / 13)


def test_rouge_l_empty() -> None:
    assert rouge_l_chars("", "") == 1.0
    assert rouge_l_chars("答", "") == 0.0


def test_punctuation_set_has_required_marks() -> None:
    for ch in "，。！？；：「」『』（）、《》,.!?;:()\"'":
        assert ch in PUNCTUATION


def test_number_recall_thousands_percent_fullwidth() -> None:
    ref = "營收1,234億元，增長3.5%。"
    # reference numbers {1234, 3.5%}
    assert number_recall("营收１２３４亿元，增长３．５％", ref) == 1.0  # full-width via NFKC, no separator
    assert number_recall("營收1234億元，增長百分之3.5", ref) == 1.0  # 百分之X == X%
    assert number_recall("營收1,234億元，增長3.5", ref) == 0.5  # bare 3.5 is not 3.5%
    assert number_recall("營收1,243億元，增長5.3%", ref) == 0.0


def test_number_recall_whole_values_and_canonical_decimals() -> None:
    assert number_recall("約500萬", "約50萬") == 0.0  # 50 is not a substring match of 500
    assert number_recall("3.50", "3.5") == 1.0
    # ref {50, 2023}; pred has 2023 only -> 1/2
    assert number_recall("2023年人口五十萬", "2023年人口50萬") == 0.5  # Chinese numerals not parsed
    # duplicates in the reference count once: {7}
    assert number_recall("7", "7天，共7次") == 1.0


def test_number_recall_fullwidth_comma_is_clause_separator_between_ascii_digits() -> None:
    # 「共12，345人」 = numbers 12 and 345 (clause comma), not 12345
    assert number_recall("12和345", "共12，345人") == 1.0
    # Fully full-width 「１，２３４」 is a thousands-separated 1234
    assert number_recall("1234", "１，２３４") == 1.0


def test_number_recall_none_without_reference_numbers() -> None:
    assert number_recall("50萬", "人口約五十萬") is None
    assert number_recall("", "") is None


def test_detect_script() -> None:
    assert detect_script("臺灣的軟體產業") == "traditional"
    assert detect_script("台湾的软件产业") == "simplified"
    assert detect_script("ABC 123") == "neutral"
    assert detect_script("") == "neutral"
    # 台 is Simplified-only to OpenCC, but the other Traditional chars win the majority.
    assert detect_script("台灣的軟體") == "traditional"
    # Phrase-aware: 公里/皇后 are valid in both scripts, so no Simplified evidence.
    assert detect_script("公里") == "neutral"


def test_script_match() -> None:
    trad_q, simp_q = "臺灣的軟體產業規模多大？", "台湾的软件产业规模多大？"
    assert script_match(trad_q, "產值約3500億元")
    assert not script_match(trad_q, "产值约3500亿元")
    assert script_match(simp_q, "产值约3500亿元")
    assert not script_match(simp_q, "產值約3500億元")
    assert script_match(trad_q, "3,500")  # neutral answer always passes
    assert not script_match("ABC?", "產值")  # neutral question only matches neutral answers


def test_a_conversation_is_answered_in_its_own_script() -> None:
    """A dialogue's script is known even when its first question has no telling character
    (「加拿大2014年的碳捕集成本大概多少？」): measured against that question, every Traditional
    answer of the conversation counted as the wrong script."""
    assert detect_script("加拿大2014年的碳捕集成本大概多少？") == "neutral"
    assert answer_in_script("美國 2017 年燃煤電廠捕集成本約 65 USD", "traditional")
    assert not answer_in_script("美国 2017 年燃煤电厂捕集成本约 65 USD", "traditional")
    assert answer_in_script("65 USD", "simplified")


# ---------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------


def test_mean_or_none() -> None:
    assert mean_or_none([1.0, None, 0.0, 0.5]) == pytest.approx(0.5)
    assert mean_or_none([]) is None
    assert mean_or_none([None, None]) is None
    assert mean_or_none(x for x in (2, 4)) == 3.0


@pytest.mark.parametrize("p", [0, 10, 25, 50, 90, 95, 99, 100, 33.3])
def test_percentile_matches_numpy(p: float) -> None:
    values = [0.3, 12.0, 1.5, 7.25, 3.0, 0.9, 4.4]
    assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)))


def test_percentile_edges() -> None:
    # p95 of [1, 2, 3, 4]: pos = 3*0.95 = 2.85 -> 3 + 0.85*(4-3) = 3.85
    assert percentile([4, 1, 3, 2], 95) == pytest.approx(3.85)
    assert percentile([5.0], 50) == 5.0
    assert percentile([], 50) is None
    assert percentile([None, 2.0, None], 50) == 2.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_ratio() -> None:
    assert ratio(0.8, 0.4) == pytest.approx(2.0)
    assert ratio(0.5, 0) is None
    assert ratio(0.5, None) is None
    assert ratio(None, 0.5) is None
    assert ratio(0.0, 0.5) == 0.0


def test_refusal_metrics() -> None:
    records = [
        (False, False),  # unanswerable, refused   -> correct
        (False, True),  # unanswerable, answered  -> hallucination
        (False, False),  # unanswerable, refused   -> correct
        (True, True),  # answerable, answered
        (True, False),  # answerable, refused    -> false refusal
        (True, True),
        (True, True),
    ]
    m = refusal_metrics(records)
    assert m["refusal_accuracy"] == pytest.approx(2 / 3)
    assert m["false_refusal_rate"] == pytest.approx(1 / 4)
    assert m["n_unanswerable"] == 3
    assert m["n_answerable"] == 4


def test_refusal_metrics_empty_denominators() -> None:
    only_answerable = refusal_metrics([(True, True), (True, False)])
    assert only_answerable["refusal_accuracy"] is None
    assert only_answerable["false_refusal_rate"] == 0.5
    only_unanswerable = refusal_metrics([(False, True)])
    assert only_unanswerable["refusal_accuracy"] == 0.0
    assert only_unanswerable["false_refusal_rate"] is None
    empty = refusal_metrics([])
    assert empty["refusal_accuracy"] is None and empty["false_refusal_rate"] is None


def test_metrics_are_finite_floats() -> None:
    for value in (
        char_f1("a", "b"),
        rouge_l_chars("甲乙", "乙"),
        ndcg_at_k([True]),
        reciprocal_rank([True]),
        hit_at_k([True], 1),
    ):
        assert isinstance(value, float) and math.isfinite(value)
