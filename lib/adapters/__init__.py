"""One module per outside tool; every command line vmbundle runs is spelled here."""
