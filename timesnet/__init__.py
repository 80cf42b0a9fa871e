"""The model: TimesNet in Paddle, data loading, training, export, evaluation, prediction."""
