"""The long-running controller daemon. Built in a later issue."""
