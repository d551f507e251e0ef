"""Learning a WordPiece vocabulary from raw text, with the tokenizer's own word splitting."""

from collections.abc import Iterable, Iterator

import tensorflow as tf
from absl import logging
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from keras_bert_impl.text.basic_tokenization import basic_tokenize

DEFAULT_RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_BATCH_SIZE = 1024


def learn_vocabulary(
    texts: Iterable[str] | tf.data.Dataset,
    vocab_size: int,
    lower_case: bool = True,
    reserved_tokens: Iterable[str] = DEFAULT_RESERVED_TOKENS,
    num_unused_tokens: int = 0,
    limit_alphabet: int | None = None,
) -> list[str]:
    """Learns a vocabulary of about `vocab_size` WordPiece tokens from texts.

    Words are split exactly as `BertTokenizer` splits them (same cleaning,
    lower-casing, accent stripping, punctuation and CJK splitting), so every
    word of the corpus can be tokenized without `[UNK]`: all its characters
    are in the vocabulary, as word starts and as `##` continuations. The
    pieces are chosen by HuggingFace `tokenizers`' WordPiece trainer, which
    handles a megabyte of text in about a second; TF-Text's pure-Python
    learner (`bert_vocab_from_dataset`) needs minutes for the same. The result
    starts with `reserved_tokens`, then `[unused0]`...`[unused{n-1}]` (room for
    tokens added later, as in the original BERT vocabularies), then the
    learned pieces, most general first. Every character stays, so a corpus
    whose alphabet (each character twice, plain and `##`) is larger than
    `vocab_size` gives a longer vocabulary, with a warning: size a
    `BertConfig` by `len(vocab)`, never by the request. Not deterministic: the
    trainer breaks ties between equally frequent merges in hash order
    (huggingface/tokenizers#1794), so the same corpus can give another
    vocabulary; keep the vocab.txt a model was trained with.

    `limit_alphabet` keeps only that many of the most frequent characters (as
    HuggingFace's BertWordPieceTokenizer, 1000 there, or TF-Text's
    `max_unique_chars`): words with rarer ones become `[UNK]`, and a few
    thousand characters seen once no longer crowd out the learned pieces.

    ```python
    vocab = learn_vocabulary(open("corpus.txt"), vocab_size=8000)
    write_vocab_file(vocab, "vocab.txt")
    ```
    """
    reserved = list(reserved_tokens) + [f"[unused{i}]" for i in range(num_unused_tokens)]
    if len(set(reserved)) != len(reserved):
        raise ValueError(f"reserved tokens repeat: {reserved}")
    if any(not token.strip() for token in reserved):
        raise ValueError(f"reserved tokens must not be empty or whitespace: {reserved}")
    if limit_alphabet is not None and limit_alphabet < 1:
        raise ValueError(f"limit_alphabet must be >= 1 or None, got {limit_alphabet}")
    if vocab_size <= len(reserved):
        raise ValueError(
            f"vocab_size={vocab_size} leaves no room beyond the {len(reserved)} reserved tokens"
        )
    if not isinstance(texts, tf.data.Dataset):
        texts = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string))

    learner = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    learner.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size - len(reserved),
        special_tokens=[],
        continuing_subword_prefix="##",
        show_progress=False,
        **({} if limit_alphabet is None else {"limit_alphabet": limit_alphabet}),
    )
    learner.train_from_iterator(_space_joined_words(texts, lower_case), trainer)
    learned = sorted(learner.get_vocab().items(), key=lambda item: item[1])
    if not learned:
        raise ValueError("no words found in the texts to learn a vocabulary from")
    vocab = reserved + [token for token, _ in learned if token not in reserved]
    if len(vocab) > vocab_size:
        logging.warning("The vocabulary has %d tokens, more than vocab_size=%d: the corpus "
                        "alphabet alone needs that many (every character, plain and ##). "
                        "Use len(vocab) as the model's vocab_size.", len(vocab), vocab_size)
    return vocab


def _space_joined_words(texts: tf.data.Dataset, lower_case: bool) -> Iterator[str]:
    """The texts' words as BertTokenizer splits them, a batch per string."""
    words = texts.batch(_BATCH_SIZE).map(
        lambda batch: tf.strings.reduce_join(
            basic_tokenize(batch, lower_case).flat_values, separator=" "
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    for joined in words.as_numpy_iterator():
        yield joined.decode("utf-8")
