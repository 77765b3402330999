"""Marketing: customer preferences, pushes through the vault, delivery, unsubscribe."""
