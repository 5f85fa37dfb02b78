"""The language-ID taggers' names by library, shared by their own tests and the reference comparison."""

CLD2 = [
    "cld2_doc_v2",
    "cld2_en_doc_v2",
    "cld2_en_paragraph_v2",
    "cld2_en_paragraph_with_doc_score_v2",
    "cld2_paragraph_v2",
]
CLD3 = ["cld3_en_doc_v2", "cld3_en_paragraph_v2", "cld3_en_paragraph_with_doc_score_v2"]
LANGDETECT = ["langdetect_doc_en_v1", "langdetect_doc_v1", "langdetect_en_paragraph_v1", "langdetect_paragraph_v1"]
LINGUA = [
    "lingua_1e2",
    "lingua_doc_en_v1",
    "lingua_doc_v1",
    "lingua_en_only_v1",
    "lingua_en_par_v1",
    "lingua_par_v1",
]
FASTTEXT = ["ft_lang_id_en_only_v2", "ft_lang_id_paragraph_v1"]
