"""Views of saved results: terminal, Markdown, HTML, plots, MLflow."""
