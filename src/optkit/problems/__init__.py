"""Problem kinds: validated instance data and independent checkers, one module per problem."""
