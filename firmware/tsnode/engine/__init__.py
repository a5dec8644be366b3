"""The int8 inference engine: .tsm loader, one activation arena, viper kernels, op dispatch."""
