import asyncio

from services.verifier.main import main

asyncio.run(main())
