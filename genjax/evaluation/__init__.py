"""Evaluation: the digit classifier (``classifier``), sample quality (``evaluator``, and
``scorer``, its one object), ROC AUC (``metrics``), pictures (``plots``), tables (``report``)."""
