"""Admins mint and revoke API tokens; only their SHA-256 is stored."""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.auth import Caller, Role, TokenRecord, TokenStore, hash_token, new_token
from api.errors import ApiError

router = APIRouter(prefix="/tokens", tags=["tokens"])
TOKEN_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class TokenInfo(BaseModel):
    name: str
    role: Role
    source: str


class MintRequest(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Role


class Minted(BaseModel):
    name: str
    role: Role
    token: str = Field(description="shown once; only its hash is kept")


def _store(request: Request) -> TokenStore:
    store: TokenStore = request.app.state.skyline.tokens
    return store


@router.get("", response_model=list[TokenInfo])
async def list_tokens(request: Request, who: Caller) -> list[TokenInfo]:
    store = _store(request)
    minted = await asyncio.to_thread(store.minted)
    return [TokenInfo(name=r.name, role=r.role, source="settings") for r in store.configured] + [
        TokenInfo(name=r.name, role=r.role, source="minted") for r in minted
    ]


@router.post("", status_code=201, response_model=Minted)
async def mint(req: MintRequest, request: Request, who: Caller) -> Minted:
    store = _store(request)
    if not store.enabled:
        raise ApiError(
            409,
            "auth_off",
            "auth is off: configure a bootstrap admin token (SKYLINE_AUTH_TOKENS) before minting tokens",
        )
    exists = ApiError(409, "token_exists", f"a token named {req.name!r} exists; revoke it first", "name")
    if any(r.name == req.name for r in store.configured):
        raise exists
    token = new_token()
    record = TokenRecord(name=req.name, role=req.role, sha256=hash_token(token))
    # One object per token, created only if absent: concurrent mints never lose each other.
    if not await asyncio.to_thread(store.mint, record):
        raise exists
    return Minted(name=req.name, role=req.role, token=token)


@router.delete("/{name}", status_code=204)
async def revoke(name: str, request: Request, who: Caller) -> None:
    store = _store(request)
    if any(r.name == name for r in store.configured):
        raise ApiError(409, "configured_token", f"token {name!r} comes from settings; remove it there")
    if not TOKEN_NAME.match(name) or not await asyncio.to_thread(store.revoke, name):
        raise ApiError(404, "not_found", f"no minted token {name!r}")
