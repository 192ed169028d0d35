"""``python -m keras_cnns`` is the ``keras-cnns`` command."""

from keras_cnns.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
