"""client_gui package."""
