"""Training: optimizer recipe, train state, compiled steps and the epoch loop."""
