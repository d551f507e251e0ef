"""Learning a WordPiece vocabulary from raw text, with the tokenizer's own word splitting."""

import collections
from collections.abc import Iterable

import tensorflow as tf
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

from keras_bert_impl.text.basic_tokenization import basic_tokenize

DEFAULT_RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_BATCH_SIZE = 1024


def learn_vocabulary(
    texts: Iterable[str] | tf.data.Dataset,
    vocab_size: int,
    lower_case: bool = True,
    reserved_tokens: Iterable[str] = DEFAULT_RESERVED_TOKENS,
    num_unused_tokens: int = 0,
) -> list[str]:
    """Learns at most `vocab_size` WordPiece tokens from texts.

    Words are split exactly as `BertTokenizer` splits them (same cleaning,
    lower-casing and accent stripping), then TF-Text's WordPiece learner
    (the one behind `bert_vocab_from_dataset`) picks the pieces. The result
    starts with `reserved_tokens`, then `[unused0]`... `[unused{n-1}]` (room
    for tokens added later, as the original BERT vocabularies have), then the
    learned pieces.

    ```python
    vocab = learn_vocabulary(open("corpus.txt"), vocab_size=8000)
    write_vocab_file(vocab, "vocab.txt")
    ```
    """
    reserved = list(reserved_tokens) + [f"[unused{i}]" for i in range(num_unused_tokens)]
    if len(set(reserved)) != len(reserved):
        raise ValueError(f"reserved tokens repeat: {reserved}")
    if vocab_size <= len(reserved):
        raise ValueError(
            f"vocab_size={vocab_size} leaves no room beyond the {len(reserved)} reserved tokens"
        )
    if not isinstance(texts, tf.data.Dataset):
        texts = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string))
    words = texts.batch(_BATCH_SIZE).map(
        lambda batch: basic_tokenize(batch, lower_case).flat_values,
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    counts = collections.Counter()
    for batch_words in words.as_numpy_iterator():
        counts.update(batch_words)
    if not counts:
        raise ValueError("no words found in the texts to learn a vocabulary from")
    counts = {word.decode("utf-8"): count for word, count in counts.items()}
    # "##" alone is never looked up, so it would only waste a slot.
    learned = learner.learn(
        counts, vocab_size - len(reserved), reserved_tokens=[], include_joiner_token=False
    )
    return reserved + [token for token in learned if token not in reserved]
