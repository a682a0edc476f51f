"""Local stand-ins for outside services Mist talks to (git hosting APIs), run on 127.0.0.1 by the tests."""
