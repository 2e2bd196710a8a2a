"""Test support: throwaway Redis servers and the pytest fixtures that start them."""
