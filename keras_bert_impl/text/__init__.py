"""TF-Text tokenization and packing: text -> WordPiece ids -> BERT inputs."""

from keras_bert_impl.text.preprocessor import BertPreprocessor
from keras_bert_impl.text.tokenizer import BertTokenizer

__all__ = ["BertPreprocessor", "BertTokenizer"]
