"""Images from Dockerfiles: parsing, the build context, the step executor and its cache."""
