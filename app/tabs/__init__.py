"""One module per tab: each builds its components inside a gr.Tab, then wires its own events."""
