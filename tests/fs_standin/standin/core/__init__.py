"""The stand-in's mirror of the real framework's package layout, where flbed reaches into it."""
