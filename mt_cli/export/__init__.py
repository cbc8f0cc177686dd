"""The model directory (write, verify, load): what training hands to every consumer."""
