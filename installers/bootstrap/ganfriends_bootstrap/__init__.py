"""GANfriends bootstrapper: standard library only, runs before any dependency is installed."""
