"""The playground's machinery, without any UI: training jobs, run records, estimates, live samples, model files,
the blank-filling score and the benchmark. It uses the language model (cutellm/) and the pictures (views/)."""
