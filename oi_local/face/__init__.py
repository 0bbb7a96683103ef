"""What the user touches: the command line, its commands, the explorer's menus, profiles and local_setup()."""
