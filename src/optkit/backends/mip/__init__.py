"""Mixed-integer programs through PuLP (HiGHS or CBC), one module per problem."""
