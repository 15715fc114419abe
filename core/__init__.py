"""interlock.core: pure, side-effect-free domain logic (sans-I/O)."""
