"""The numbers behind the pictures (inspection, curve reading) and the figures drawn from them (Plotly charts, the
live SVG chart, the offline HTML export). The app and `make visualize` call the same functions."""
