"""MIDI controllers: mapping files, the mapping engine and (in ports.py) the ports."""
