"""HTTP routes, one router per group of simulated systems."""
