"""Prompt and answer-text templates, one file per template and script (zh-Hant / zh-Hans)."""
