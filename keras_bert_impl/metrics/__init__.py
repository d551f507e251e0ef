"""Task metrics: classification accuracy/F1, conlleval entity scores, official SQuAD EM/F1."""
