"""k-means pseudo-labels and cluster-quality metrics."""
