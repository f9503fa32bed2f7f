import asyncio

from services.issuer.main import main

asyncio.run(main())
