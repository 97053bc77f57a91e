"""First-party image data sets, one module per file format.

``hooks`` registers them; ``arrays`` holds what every format shares (a ``uint8`` array view
per split and the seeded hold-out splits of the reference implementation, openai/vdvae).
"""
