"""Network formulations, interchangeable by name (``lindistflow``, ``copperplate``)."""
