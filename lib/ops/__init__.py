"""Every operation a user can ask for, called alike by the CLI, the methods, the controller and the web console."""
