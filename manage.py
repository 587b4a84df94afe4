#!/usr/bin/env python
from bulkops.manage import main

if __name__ == "__main__":
    main()
