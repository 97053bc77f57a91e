from genkit.cli import entry_point

entry_point()
