"""Physics that real data needs too: distances, R500, scaling relations, survey noise."""
