"""Studies built on the game layer.

HyperSHAP (hpo), ParaACE interaction detection, the causal study of explanations and
predictions.
"""
