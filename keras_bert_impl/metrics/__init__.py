"""Task metrics: classification accuracy/F1, conlleval entity scores, official SQuAD and
CMRC 2018 EM/F1."""
