"""What SMF runs for one guest (start, stop, refresh). Built in issue 4."""
