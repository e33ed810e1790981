"""The vault (electronic safe 113): registrations of backed-up value against certificates."""
