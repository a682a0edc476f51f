"""Tests that try to break Mist from outside: permissions, fuzzing, injection, secret leaks and tokens."""
