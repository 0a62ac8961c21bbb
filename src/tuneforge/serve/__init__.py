"""Generation, chat and (later) serving and export."""
