"""Model wrappers: classifiers own their input normalisation, denoisers own [-1,1] and resizing."""
