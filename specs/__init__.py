"""Framework-free specifications shared by both backends: data sets, model configurations, run outputs."""
