"""Decoding CTC output beyond greedy: beam search with n-gram language models, a lexicon and hot words.

One purpose per file:
    ngram.py      interpolated Kneser-Ney n-gram estimation and the ARPA format
    lm.py         `asr-poc lm build`: word and character LMs, lexicon and hot words from a data set's texts
    emissions.py  CTC logits / log-probabilities of any CTC model (and of an exported ONNX model)
    beam.py       greedy and beam-search decoders (torchaudio's flashlight `ctc_decoder`), `make_decoder`
    hotwords.py   a KenLM wrapper that boosts hot words (a flashlight `CTCDecoderLM`)
"""
