"""interlock.adapters: everything that touches the world."""
