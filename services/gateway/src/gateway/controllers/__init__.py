"""Thin HTTP controllers: decode, call the account store or a service, answer."""
