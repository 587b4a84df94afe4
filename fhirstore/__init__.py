"""The FHIR resource store: resources with their compartment and Group indexes, the loaders
and generator that fill it, the FHIR read endpoints, the console's Data page and the
operator API for Groups. The export engine reads it through fhirstore.reads."""
