"""Test oracles: readable reference implementations the product is compared against."""
