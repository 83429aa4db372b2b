"""The LightningModules: one per data.task (classifier.py, language_model.py; the map is
training/pieces.TASK_MODULES), each a training loop around a backbone from models/. What they
share is in base.py: optimizers and schedules (optim.py), the regularizer group
(regularization.py), full-batch gd; metrics.py holds the classification metrics."""
